// General matrix product on separate buffers: C = α·op(A)·op(B) + β·D, one job per dispatch, for the
// linear-network theory (weight chains, Gram blocks) and standalone matmuls (bench). The grouped layer kernels
// cover everything inside inference; this one takes its operands from any tensors, with strides.
//
// (The bindings are named mat_* so that the matmul loop's register arrays a and b do not shadow them.)
// Job fields (struct Job in layer-matmul.wgsl): C is m×n, the inner dimension is k; a_off/b_off/c_off/d_off are
// element offsets into a/b/c/d; e_off = lda, f_off = ldb, bias_off = ldc (also D's leading dimension) in
// elements; coef0 = α, coef1 = β; flags: TRANS_A (A stored k×m), TRANS_B (B stored n×k), HAS_D, ADD_A (adds A
// itself, for k = n: C = α·A·op(B) + A, the product with an identity residual, A·(I + α·op(B))).

const TRANS_A: u32 = 1u;
const TRANS_B: u32 = 2u;
const HAS_D: u32 = 4u;
const ADD_A: u32 = 8u;

@group(0) @binding(1) var<storage, read> mat_a: array<f32>;
@group(0) @binding(2) var<storage, read> mat_b: array<f32>;
@group(0) @binding(3) var<storage, read> mat_d: array<f32>;
@group(0) @binding(4) var<storage, read_write> mat_c: array<f32>;

fn skip_dispatch() -> bool {
  return false;
}

fn load_a(job: Job, row: u32, kk: u32) -> f32 {
  if ((job.flags & TRANS_A) != 0u) { return mat_a[job.a_off + kk * job.e_off + row]; }
  return mat_a[job.a_off + row * job.e_off + kk];
}

fn load_b(job: Job, kk: u32, col: u32) -> f32 {
  if ((job.flags & TRANS_B) != 0u) { return mat_b[job.b_off + col * job.f_off + kk]; }
  return mat_b[job.b_off + kk * job.f_off + col];
}

fn epilogue(job: Job, row: u32, col: u32, acc: f32) -> vec4<f32> {
  var value = job.coef0 * acc;
  if ((job.flags & HAS_D) != 0u) { value += job.coef1 * mat_d[job.d_off + row * job.bias_off + col]; }
  if ((job.flags & ADD_A) != 0u) { value += load_a(job, row, col); }
  mat_c[job.c_off + row * job.bias_off + col] = value;
  return vec4<f32>(0.0);
}

fn finish_tile(job: Job, tile: u32, partial: vec4<f32>) {}
