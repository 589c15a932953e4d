export { abitmediaApi } from './routes.js';
