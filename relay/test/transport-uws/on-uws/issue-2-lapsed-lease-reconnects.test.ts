// relay/test/regression/issue-2-lapsed-lease-reconnects.test.ts again, on the uWS transport (see ../protocol-suite.ts).
import { registerOnUws } from '../protocol-suite.js';

await registerOnUws(() => import('../../regression/issue-2-lapsed-lease-reconnects.test.js'));
