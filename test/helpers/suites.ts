import { readdirSync } from 'node:fs';
import { join } from 'node:path';

/**
 * The native, OAuth and admin API suites and the security suites, imported unchanged into the calling
 * file (which has set ROTOR_TEST_STORE): SIGKILL, fuzzing and slow clients stay on SQLite (they start
 * their own processes, run long, or do not touch the store).
 */
export async function importApiSuites(): Promise<void> {
  const root = join(import.meta.dirname, '..');
  const suites: Record<string, (file: string) => boolean> = {
    http: () => true,
    security: (file) => !['sigkill.test.ts', 'fuzz.test.ts', 'slowloris.test.ts'].includes(file),
  };
  for (const [folder, wanted] of Object.entries(suites)) {
    const dir = join(root, folder);
    for (const file of readdirSync(dir).filter((f) => f.endsWith('.test.ts') && wanted(f)).sort()) await import(join(dir, file));
  }
}
