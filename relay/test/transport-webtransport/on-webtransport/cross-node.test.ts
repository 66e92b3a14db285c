// relay/test/cluster/cross-node.test.ts again, over WebTransport (see ../protocol-suite.ts).
import { registerOnWebTransport } from '../protocol-suite.js';

await registerOnWebTransport(() => import('../../cluster/cross-node.test.js'));
