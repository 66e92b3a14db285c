// relay/test/integration/redis-nodes.test.ts again, on the uWS transport (see ../protocol-suite.ts).
import { registerOnUws } from '../protocol-suite.js';

await registerOnUws(() => import('../../integration/redis-nodes.test.js'));
