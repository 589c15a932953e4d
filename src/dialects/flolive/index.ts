export { floliveApi } from './routes.js';
