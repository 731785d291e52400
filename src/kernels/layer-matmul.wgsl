// Grouped, register-tiled matmul: one dispatch computes C = A·B for every layer ("job") listed in `jobs`,
// so that a whole network's forward errors, activity gradients or parameter gradients cost one dispatch.
//
// Each invocation owns a block of one job's output and keeps it in registers. The first three layouts use no
// workgroup memory and no barrier (barriers are slow on CPU adapters such as lavapipe); the last two are for GPUs.
// Five layouts:
//   blocked (default): invocation t owns a TM×TN block; consecutive invocations take consecutive column blocks
//     of the same rows.
//   SUBGROUP_TILES: the workgroup is one subgroup of WG lanes and owns a (TM·WG)×TN tile; lane l owns rows
//     m0 + l, m0 + WG + l, … and all TN columns. Each lane loads TM values of A and TN/WG of B per k, and the
//     B values reach the other lanes by subgroupBroadcast. On lavapipe every non-uniform load is a per-lane
//     scalar loop (~10 instructions a lane), so this cuts the loads per FMA by WG. The k loops are generated
//     (subgroupBroadcast needs a constant lane), see kernels/layer-matmul.ts.
//   SPLIT_K: the workgroup is one subgroup of WG lanes and owns a TM×TN block; lane l takes k = l, l + WG, …
//     and the partial products meet in subgroupAdd, after which lane 0 runs the epilogue. For GPUs running the
//     small products of PC layers (batch 64, k = 300): WG times more workgroups than the blocked layout and a k
//     loop WG times shorter, the regime where the dependent loads of the k loop, not the FMAs, set the time. (On
//     lavapipe it is far slower than the subgroup layout, bench/tiles.ts: a lane loads TM + TN values per TM·TN
//     multiply-adds, and every load there is a per-lane loop.)
//   SHARED_TILES: the classic GPU layout: WG = SIDE² invocations own a (TM·SIDE)×(TN·SIDE) tile, invocation
//     (y, x) the TM rows from y·TM and TN columns from x·TN; per block of BK = 16 steps of k the workgroup
//     stages the A and B panels in workgroup memory (coalesced loads, each value loaded once per workgroup),
//     and every invocation reads its operands there. Between the panels two barriers; for large products on
//     GPUs (on lavapipe barriers are slow).
//   MATRIX_TILES: tensor cores, through Dawn's chromium_experimental_subgroup_matrix. The workgroup is one
//     subgroup and owns TM×TN subgroup matrices of the adapter's SM×SN (×SK) configuration; per panel of BK
//     steps of k it stages A and B in workgroup memory in the operand type (f16 rounds them: opt-in, see
//     KernelTuning.tiles), multiplies and accumulates in f32 matrices, and at the end stores them to workgroup
//     memory, from where each lane runs the element-wise epilogue on whole rows (subgroup matrices hide which
//     lane holds which element).
//
// The including kernel file provides the bindings and five hooks:
//   fn skip_dispatch() -> bool                              whole dispatch is a no-op (e.g. solver finished)
//   fn load_a(job: Job, row: u32, kk: u32) -> f32            A[row, kk]
//   fn load_b(job: Job, kk: u32, col: u32) -> f32            B[kk, col]
//   fn epilogue(job: Job, row: u32, col: u32, acc: f32) -> vec4<f32>   writes outputs, returns partial sums
//   fn finish_tile(job: Job, tile: u32, partial: vec4<f32>)  stores the tile's partial sums
// Partial sums are per invocation ("tile") and summed later in a fixed order, so every reduction is
// deterministic.
//
// With VEC_EPILOGUE (set by the host when TN is a multiple of 4) the file also provides
//   fn vec_ok(job: Job) -> bool                                   every offset the epilogue uses and n are ≡ 0 mod 4
//   fn epilogue4(job: Job, row: u32, col: u32, acc: vec4<f32>) -> vec4<f32>   columns col..col+3 at once
// and a job that passes vec_ok (a uniform test) takes 4 outputs per call: each invocation's outputs in a row
// are contiguous, so the epilogue reads and writes vec4s. On lavapipe every lane-varying load or store is a
// per-lane loop, so this cuts the epilogue's memory instructions by 4.
// With VEC4_ONLY as well, the host has checked that every job of the dispatch passes vec_ok: only epilogue4 is
// compiled (neither vec_ok nor epilogue is needed): about half the activity-gradient kernel's compile time.

const WG: u32 = {{WG}}u;
const TM: u32 = {{TM}}u;
const TN: u32 = {{TN}}u;

// One matmul of the group (88 bytes; packed by packJobRecords, kernels/structs.ts). Offsets are in f32 elements;
// each kernel file documents what its d/e/f offsets, flags and coefficients mean.
struct Job {
  wg_start: u32,  // first workgroup of this record in the dispatch
  tiles_n: u32,   // column blocks (of workgroup tiles in the subgroup layout)
  tiles: u32,     // row blocks × column blocks (× WG in the subgroup layout): invocations with outputs
  m: u32,
  n: u32,
  k: u32,
  a_off: u32,     // operand A
  b_off: u32,     // operand B
  c_off: u32,     // main output
  d_off: u32,     // extra operands / outputs, per kernel
  e_off: u32,
  f_off: u32,
  bias_off: u32,
  part_off: u32,  // first partial-sum slot (4 f32 per tile)
  flags: u32,
  coef0: f32,
  coef1: f32,
  group0: u32,    // the job's workgroup that this record's first workgroup computes (see find_job)
  geo0: u32,      // a convolution-shaped job's geometry (conv-gather.wgsl); zeros for a plain matmul
  geo1: u32,
  geo2: u32,
  geo3: u32,
}

@group(0) @binding(0) var<storage, read> jobs: array<Job>;

// The table holds one record per run of consecutive workgroups of one job, sorted by wg_start: the host
// interleaves cheap and costly jobs' workgroups (packJobs in layer-jobs.ts) because lavapipe hands each thread
// one contiguous chunk of the grid. Workgroup wg belongs to the last record starting at or before it.
fn find_job(wg: u32) -> u32 {
  var lo = 0u;
  var hi = arrayLength(&jobs);
  while (hi - lo > 1u) {
    let mid = (lo + hi) / 2u;
    if (jobs[mid].wg_start <= wg) { lo = mid; } else { hi = mid; }
  }
  return lo;
}

// This workgroup's job record and which of the job's workgroups it is (its tile in the subgroup, split-k and
// workgroup-memory layouts; its WG tiles in the blocked one).
struct Assignment {
  job: Job,
  group: u32,
}

fn assignment(wid: vec3u, nwg: vec3u) -> Assignment {
  let wg = wid.x + wid.y * nwg.x;
  let job = jobs[find_job(wg)];
  return Assignment(job, wg - job.wg_start + job.group0);
}

// A[row, kk] and B[kk, col] for the layouts whose k loop steps past job.k (split k, workgroup memory, subgroup
// matrices): zero past k in both operands (0·0, never 0·inf from a clamped copy); rows and columns past the edge
// a clamped copy, whose outputs are never stored.
fn load_a_padded(job: Job, row: u32, kk: u32) -> f32 {
  return select(0.0, load_a(job, min(row, job.m - 1u), min(kk, max(job.k, 1u) - 1u)), kk < job.k);
}

fn load_b_padded(job: Job, kk: u32, col: u32) -> f32 {
  return select(0.0, load_b(job, min(kk, max(job.k, 1u) - 1u), min(col, job.n - 1u)), kk < job.k);
}

#if SUBGROUP_TILES
const TB: u32 = TN / WG;  // B values each lane loads per k

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(subgroup_invocation_id) lane: u32) {
  if (skip_dispatch()) { return; }
  let assigned = assignment(wid, nwg);
  let job = assigned.job;
  // Every lane of a workgroup stays active (subgroupBroadcast needs them all): tiles are whole workgroups.
  let group = assigned.group;
  let tile_m0 = (group / job.tiles_n) * TM * WG;
  let m0 = tile_m0 + lane;
  let n0 = (group % job.tiles_n) * TN;
  let m_last = job.m - 1u;
  let n_last = job.n - 1u;
  let cols = job.n - n0;  // columns of this tile inside the job (uniform): groups of WG past it are skipped
  // Row groups (WG rows each, one row per lane) of this tile inside the job (uniform): a tile at the job's last
  // rows loads A and multiplies for these only (a k loop per power of two of row groups below TM, and TM).
  let row_groups = min(TM, (job.m - tile_m0 + WG - 1u) / WG);

  var acc: array<array<f32, TN>, TM>;
  var a: array<f32, TM>;
  var b: array<f32, TB>;
  // The k loop, once per row-group variant G (kernels/layer-matmul.ts, subgroupKLoops), each of the form
  //   for (var kk = 0u; kk < job.k; kk++) {
  //     for (var i = 0u; i < G; i++) { a[i] = load_a(job, min(m0 + i * WG, m_last), kk); }
  //     for (var j = 0u; j < TB; j++) {
  //       if (j * WG < cols) { b[j] = load_b(job, kk, min(n0 + j * WG + lane, n_last)); }
  //     }
  //     <for each column: broadcast its B value, fma into the accumulators of the first G row groups>
  //   }
  // chosen once per tile, outside the loop (a branch per k would slow whole tiles).
  {{SUBGROUP_K_LOOPS}}

  finish_tile(job, group * WG + lane, tile_epilogue(job, m0, WG, n0, &acc));
}
#elif SPLIT_K
@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(subgroup_invocation_id) lane: u32) {
  if (skip_dispatch()) { return; }
  let assigned = assignment(wid, nwg);
  let job = assigned.job;
  let group = assigned.group;
  let m0 = (group / job.tiles_n) * TM;
  let n0 = (group % job.tiles_n) * TN;

  var acc: array<array<f32, TN>, TM>;
  var a: array<f32, TM>;
  var b: array<f32, TN>;
  // The same trip count on every lane (subgroupAdd below needs them all): lanes past k add zeros.
  for (var k0 = 0u; k0 < job.k; k0 += WG) {
    let kk = k0 + lane;
    for (var i = 0u; i < TM; i++) { a[i] = load_a_padded(job, m0 + i, kk); }
    for (var j = 0u; j < TN; j++) { b[j] = load_b_padded(job, kk, n0 + j); }
    for (var i = 0u; i < TM; i++) {
      for (var j = 0u; j < TN; j++) { acc[i][j] = fma(a[i], b[j], acc[i][j]); }
    }
  }
  for (var i = 0u; i < TM; i++) {
    for (var j = 0u; j < TN; j++) { acc[i][j] = subgroupAdd(acc[i][j]); }
  }

  // Lane 0 owns the block's outputs; the other lanes' partial-sum slots hold zeros.
  var partial = vec4<f32>(0.0);
  if (lane == 0u) { partial = tile_epilogue(job, m0, 1u, n0, &acc); }
  finish_tile(job, group * WG + lane, partial);
}
#elif SHARED_TILES
const SIDE: u32 = {{SIDE}}u;
const BK: u32 = 16u;
const BM: u32 = TM * SIDE;
const BN: u32 = TN * SIDE;
var<workgroup> panel_a: array<f32, BM * BK>;  // [k][row]
var<workgroup> panel_b: array<f32, BK * BN>;  // [k][column]

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lane: u32) {
  if (skip_dispatch()) { return; }
  let assigned = assignment(wid, nwg);
  let job = assigned.job;
  let group = assigned.group;
  let bm0 = (group / job.tiles_n) * BM;
  let bn0 = (group % job.tiles_n) * BN;
  let ty = lane / SIDE;
  let tx = lane % SIDE;

  var acc: array<array<f32, TN>, TM>;
  var a: array<f32, TM>;
  var b: array<f32, TN>;
  for (var k0 = 0u; k0 < job.k; k0 += BK) {
    // Each invocation stages BM·BK/WG values of A and BK·BN/WG of B (whole numbers: SIDE divides 16).
    for (var r = 0u; r < BM * BK / WG; r++) {
      let e = lane + r * WG;
      panel_a[(e % BK) * BM + e / BK] = load_a_padded(job, bm0 + e / BK, k0 + e % BK);
    }
    for (var r = 0u; r < BK * BN / WG; r++) {
      let e = lane + r * WG;
      panel_b[e] = load_b_padded(job, k0 + e / BN, bn0 + e % BN);
    }
    workgroupBarrier();
    for (var kq = 0u; kq < BK; kq++) {
      for (var i = 0u; i < TM; i++) { a[i] = panel_a[kq * BM + ty * TM + i]; }
      for (var j = 0u; j < TN; j++) { b[j] = panel_b[kq * BN + tx * TN + j]; }
      for (var i = 0u; i < TM; i++) {
        for (var j = 0u; j < TN; j++) { acc[i][j] = fma(a[i], b[j], acc[i][j]); }
      }
    }
    workgroupBarrier();
  }

  finish_tile(job, group * WG + lane, tile_epilogue(job, bm0 + ty * TM, 1u, bn0 + tx * TN, &acc));
}
#elif MATRIX_TILES
// One subgroup matrix multiplies an SM×SK block of A by an SK×SN block of B (the adapter's configuration).
const SM: u32 = {{SM}}u;
const SN: u32 = {{SN}}u;
const SK: u32 = {{SK}}u;
const BK: u32 = {{BK}}u;  // steps of k per staged panel, a multiple of SK
const BM: u32 = TM * SM;
const BN: u32 = TN * SN;
alias Operand = {{OPERAND}};  // f32, or f16 (operands rounded to half precision, sums in f32)
var<workgroup> panel_a: array<Operand, BM * BK>;  // row-major BM × BK
var<workgroup> panel_b: array<Operand, BK * BN>;  // row-major BK × BN
var<workgroup> tile_c: array<f32, BM * BN>;       // the accumulators, for the per-element epilogue

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lane: u32) {
  if (skip_dispatch()) { return; }
  let assigned = assignment(wid, nwg);
  let job = assigned.job;
  let group = assigned.group;
  let bm0 = (group / job.tiles_n) * BM;
  let bn0 = (group % job.tiles_n) * BN;

  var acc: array<subgroup_matrix_result<f32, SN, SM>, TM * TN>;
  for (var t = 0u; t < TM * TN; t++) { acc[t] = subgroup_matrix_result<f32, SN, SM>(); }
  for (var k0 = 0u; k0 < job.k; k0 += BK) {
    for (var e = lane; e < BM * BK; e += WG) { panel_a[e] = Operand(load_a_padded(job, bm0 + e / BK, k0 + e % BK)); }
    for (var e = lane; e < BK * BN; e += WG) { panel_b[e] = Operand(load_b_padded(job, k0 + e / BN, bn0 + e % BN)); }
    workgroupBarrier();
    for (var kq = 0u; kq < BK; kq += SK) {
      for (var j = 0u; j < TN; j++) {
        let right = subgroupMatrixLoad<subgroup_matrix_right<Operand, SN, SK>, row_major>(&panel_b, kq * BN + j * SN, BN);
        for (var i = 0u; i < TM; i++) {
          let left = subgroupMatrixLoad<subgroup_matrix_left<Operand, SK, SM>, row_major>(&panel_a, i * SM * BK + kq, BK);
          acc[i * TN + j] = subgroupMatrixMultiplyAccumulate(left, right, acc[i * TN + j]);
        }
      }
    }
    workgroupBarrier();
  }
  for (var i = 0u; i < TM; i++) {
    for (var j = 0u; j < TN; j++) { subgroupMatrixStore<row_major>(&tile_c, i * SM * BN + j * SN, acc[i * TN + j], BN); }
  }
  workgroupBarrier();

  // The epilogue runs per element: lane l takes the tile's rows l, l + WG, …
  var partial = vec4<f32>(0.0);
  for (var r = lane; r < BM; r += WG) {
    let row = bm0 + r;
    if (row >= job.m) { break; }
    partial += matrix_row_epilogue(job, row, bn0, r * BN);
  }
  finish_tile(job, group * WG + lane, partial);
}

// One row of the matrix layout's tile from tile_c (its first element at `at`): 4 columns per call where the job
// allows (VEC_EPILOGUE), outputs past the edge skipped.
fn matrix_row_epilogue(job: Job, row: u32, n0: u32, at: u32) -> vec4<f32> {
  var partial = vec4<f32>(0.0);
#if VEC_EPILOGUE
#if !VEC4_ONLY
  if (vec_ok(job)) {
#endif
    for (var c = 0u; c < BN && n0 + c < job.n; c += 4u) {
      partial += epilogue4(job, row, n0 + c, vec4<f32>(tile_c[at + c], tile_c[at + c + 1u], tile_c[at + c + 2u], tile_c[at + c + 3u]));
    }
    return partial;
#if !VEC4_ONLY
  }
#endif
#endif
#if !VEC4_ONLY
  for (var c = 0u; c < BN && n0 + c < job.n; c++) { partial += epilogue(job, row, n0 + c, tile_c[at + c]); }
  return partial;
#endif
}
#else
@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lane: u32) {
  if (skip_dispatch()) { return; }
  let assigned = assignment(wid, nwg);
  let job = assigned.job;
  let tile = assigned.group * WG + lane;
  if (tile >= job.tiles) { return; }
  let m0 = (tile / job.tiles_n) * TM;
  let n0 = (tile % job.tiles_n) * TN;
  // Rows/columns past the edge are clamped for loading and skipped when storing, so any shape works.
  let m_last = job.m - 1u;
  let n_last = job.n - 1u;

  var acc: array<array<f32, TN>, TM>;
  var a: array<f32, TM>;
  var b: array<f32, TN>;
  for (var kk = 0u; kk < job.k; kk++) {
    for (var i = 0u; i < TM; i++) { a[i] = load_a(job, min(m0 + i, m_last), kk); }
    for (var j = 0u; j < TN; j++) { b[j] = load_b(job, kk, min(n0 + j, n_last)); }
    for (var i = 0u; i < TM; i++) {
      for (var j = 0u; j < TN; j++) { acc[i][j] = fma(a[i], b[j], acc[i][j]); }
    }
  }

  finish_tile(job, tile, tile_epilogue(job, m0, 1u, n0, &acc));
}
#endif

// The epilogue over one invocation's accumulators (both layouts): rows m0, m0 + row_step, …, columns n0.. n0 + TN − 1,
// 4 columns per call where the job allows (VEC_EPILOGUE); outputs past the edge are skipped. Returns the tile's
// partial sums.
fn tile_epilogue(job: Job, m0: u32, row_step: u32, n0: u32, acc: ptr<function, array<array<f32, TN>, TM>>) -> vec4<f32> {
#if VEC4_ONLY
  return tile_epilogue4(job, m0, row_step, n0, acc);
#else
#if VEC_EPILOGUE
  if (vec_ok(job)) { return tile_epilogue4(job, m0, row_step, n0, acc); }
#endif
  var partial = vec4<f32>(0.0);
  for (var i = 0u; i < TM; i++) {
    for (var j = 0u; j < TN; j++) {
      let row = m0 + i * row_step;
      if (row < job.m && n0 + j < job.n) { partial += epilogue(job, row, n0 + j, (*acc)[i][j]); }
    }
  }
  return partial;
#endif
}

#if VEC_EPILOGUE
fn tile_epilogue4(job: Job, m0: u32, row_step: u32, n0: u32, acc: ptr<function, array<array<f32, TN>, TM>>) -> vec4<f32> {
  var partial = vec4<f32>(0.0);
  for (var i = 0u; i < TM; i++) {
    for (var j = 0u; j < TN; j += 4u) {
      let row = m0 + i * row_step;
      if (row < job.m && n0 + j < job.n) {
        partial += epilogue4(job, row, n0 + j, vec4<f32>((*acc)[i][j], (*acc)[i][j + 1u], (*acc)[i][j + 2u], (*acc)[i][j + 3u]));
      }
    }
  }
  return partial;
}
#endif
