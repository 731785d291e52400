// The inference solver's state, kept on the GPU for a whole solve (STATE in kernels/structs.ts).
// Written by the controller kernels (solver.wgsl) and by the host before a solve starts; read by the gated
// stage kernels, which become no-ops once `done` is set.
struct SolverState {
  tprev: f32,          // start of the next step (diffrax's tprev); the solve's time once done
  tnext: f32,          // end of the next step
  prev_inv: f32,       // PID memory: 1/scaled error of the last accepted step
  prev_prev_inv: f32,  // ... and of the one before
  at_dtmin: u32,
  done: u32,
  failed: u32,         // 1: max_steps reached before t1; 2: dtmin reached with force_dtmin off; 3: non-finite start
  last_accepted: u32,  // the step just decided was accepted (read by the accept and record kernels)
  steps: u32,          // attempted steps, accepted + rejected (what max_steps bounds)
  accepted: u32,
  rejected: u32,
  scaled_error: f32,   // of the last attempted step (-1 when the error was not finite)
  h0: f32,             // Hairer's initial-step algorithm: first probe step
  d1: f32,             //   and rms(f0/scale)
  spare: f32,
  event: u32,          // 1 when the steady-state event ended the solve
}
