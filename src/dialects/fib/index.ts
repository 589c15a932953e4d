export { fibApi } from './routes.js';
