// The browser client ships, and `rotor serve` serves at /sdk/rotor-client.js, as one ES module with no
// imports: the parts in src/ are bundled into it. tsc (npm run build) checks them and writes the .d.ts.
import { defineConfig } from 'rolldown';

export default defineConfig({
  input: 'src/rotor-client.ts',
  platform: 'browser',
  tsconfig: 'tsconfig.json',
  transform: { target: 'es2020' },
  output: { file: 'dist/rotor-client.js', format: 'esm' },
});
