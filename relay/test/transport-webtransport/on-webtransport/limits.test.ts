// relay/test/integration/limits.test.ts again, over WebTransport (see ../protocol-suite.ts).
import { registerOnWebTransport } from '../protocol-suite.js';

await registerOnWebTransport(() => import('../../integration/limits.test.js'));
