// relay/test/integration/events.test.ts again, on the uWS transport (see ../protocol-suite.test.ts).
import { registerOnUws } from '../protocol-suite.js';

await registerOnUws(() => import('../../integration/events.test.js'));
