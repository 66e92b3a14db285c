// relay/test/integration/transport.test.ts again, over WebTransport (see ../protocol-suite.ts).
import { registerOnWebTransport } from '../protocol-suite.js';

await registerOnWebTransport(() => import('../../integration/transport.test.js'));
