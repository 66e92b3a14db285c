// relay/test/cluster/cross-node.test.ts again, on the uWS transport (see ../protocol-suite.ts).
import { registerOnUws } from '../protocol-suite.js';

await registerOnUws(() => import('../../cluster/cross-node.test.js'));
