// relay/test/regression/issue-2-lapsed-lease-reconnects.test.ts again, over WebTransport (see ../protocol-suite.ts).
import { registerOnWebTransport } from '../protocol-suite.js';

await registerOnWebTransport(() => import('../../regression/issue-2-lapsed-lease-reconnects.test.js'));
