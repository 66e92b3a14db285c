// relay/test/integration/multinode.test.ts again, over WebTransport (see ../protocol-suite.ts).
import { registerOnWebTransport } from '../protocol-suite.js';

await registerOnWebTransport(() => import('../../integration/multinode.test.js'));
