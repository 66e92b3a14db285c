/** `k6/execution` for the shim: the current VU and scenario, and test.abort(). */
import { currentVu, state } from './state.js';

function vu() {
  const ctx = currentVu();
  if (!ctx) throw new Error('k6/execution used outside a VU (init context)');
  return ctx;
}

const execution = {
  get vu() {
    const ctx = vu();
    return {
      idInTest: ctx.idInTest,
      idInInstance: ctx.idInTest,
      iterationInScenario: ctx.iterationInScenario,
      iterationInInstance: ctx.iterationInTest,
    };
  },
  get scenario() {
    const ctx = vu();
    return {
      name: ctx.scenario,
      iterationInTest: ctx.iterationInTest,
      iterationInInstance: ctx.iterationInTest,
      startTime: 0,
      progress: 0,
    };
  },
  test: {
    abort(reason?: string): void {
      state().aborted = reason ?? 'aborted';
    },
  },
};

export default execution;
