export { jwtplusApi } from './routes.js';
