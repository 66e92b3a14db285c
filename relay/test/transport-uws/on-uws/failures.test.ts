// relay/test/integration/failures.test.ts again, on the uWS transport (see ../protocol-suite.test.ts).
import { registerOnUws } from '../protocol-suite.js';

await registerOnUws(() => import('../../integration/failures.test.js'));
