// The bindings and accessors the two layer kernels that write the workspace share (forward.wgsl,
// activity-grad.wgsl): the parameters, the workspace as vec4s, the solver state of GATED kernels, and the
// grouped matmul's skip_dispatch and load_a hooks (A is an activity-shaped region of the workspace, or with CONV
// a convolution's kernel).

@group(0) @binding(1) var<storage, read> params: array<f32>;
// vec4 elements so that the epilogue can move 4 outputs at once (epilogue4); ld / st address single floats.
@group(0) @binding(2) var<storage, read_write> work: array<vec4<f32>>;
#if GATED
// Solver state (solver.wgsl): a finished solve turns the remaining steps' dispatches into no-ops.
@group(0) @binding(3) var<storage, read> state: SolverState;
#endif

fn skip_dispatch() -> bool {
#if GATED
  return state.done != 0u;
#else
  return false;
#endif
}

fn ld(i: u32) -> f32 {
  return work[i >> 2u][i & 3u];
}

fn st(i: u32, v: f32) {
  work[i >> 2u][i & 3u] = v;
}

fn load_a(job: Job, row: u32, kk: u32) -> f32 {
#if CONV
  // A convolution's A operand is its kernel (conv_weight in the kernel file); B is gathered from the activities.
  if (gather_of(job) != GATHER_NONE) { return conv_weight(job, row, kk); }
#endif
  return ld(job.a_off + row * job.k + kk);
}
