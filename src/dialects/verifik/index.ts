export { verifikApi } from './routes.js';
