// relay/test/integration/lifecycle.test.ts again, over WebTransport (see ../protocol-suite.ts).
import { registerOnWebTransport } from '../protocol-suite.js';

await registerOnWebTransport(() => import('../../integration/lifecycle.test.js'));
