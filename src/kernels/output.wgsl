// Row-wise kernels, one invocation per sample (row).
//
// ce_errors  turns the logits that the ERRORS kernel left in e_L into the cross-entropy "error"
//            g = y − softmax(logits)·Σy (= −∂E_L/∂logits, so the gradient kernels treat mse and ce alike) and
//            writes each row's energy −Σ y·log_softmax(logits) as the first of 4 partials.
// loss_rows  JPC's mse_loss / cross_entropy_loss and compute_accuracy, per row: partials (loss_b, correct_b).
//            argmax takes the first maximum, like jnp.argmax. The ce loss uses a stable log-softmax where
//            JPC takes log(softmax(·)); the two agree wherever JPC's is finite.
// row_norms  ‖row‖₂ of every row (JPC's compute_activity_norms averages them), as the first of 4 partials, for
//            many regions (every layer's activities) in one dispatch: compiled with ROW_TABLE, it reads one
//            Rows record per region from a storage table instead of the uniform.

struct Rows {
  rows: u32,
  cols: u32,
  pred_off: u32,   // logits / predictions [rows × cols]
  target_off: u32, // one-hot (or soft) targets [rows × cols]
  part_off: u32,   // 4 partials per row
  loss_ce: u32,    // loss_rows: 0 = mse, 1 = ce
  groups: u32,     // ROW_TABLE: workgroups per region (the same in every record)
  regions: u32,    // ROW_TABLE: records in the table (the same in every record)
}

#if ROW_TABLE
@group(0) @binding(0) var<storage, read> table: array<Rows>;
// The record of the region this workgroup covers, so the helpers read `rows` as with the uniform.
var<private> rows: Rows;
#else
@group(0) @binding(0) var<uniform> rows: Rows;
#endif
@group(0) @binding(1) var<storage, read_write> work: array<f32>;
#if GATED
@group(0) @binding(2) var<storage, read> state: SolverState;
#endif

const ROW_WG: u32 = 64u;

fn row_index(gid: vec3u, nwg: vec3u) -> u32 {
  return gid.x + gid.y * nwg.x * ROW_WG;
}

fn log_sum_exp(off: u32) -> f32 {
  var m = work[off];
  for (var j = 1u; j < rows.cols; j++) { m = max(m, work[off + j]); }
  var s = 0.0;
  for (var j = 0u; j < rows.cols; j++) { s += exp(work[off + j] - m); }
  return m + log(s);
}

fn write_partials(r: u32, a: f32, b: f32) {
  let at = rows.part_off + 4u * r;
  work[at] = a;
  work[at + 1u] = b;
  work[at + 2u] = 0.0;
  work[at + 3u] = 0.0;
}

@compute @workgroup_size(ROW_WG)
fn ce_errors(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
#if GATED
  if (state.done != 0u) { return; }
#endif
  let r = row_index(gid, nwg);
  if (r >= rows.rows) { return; }
  let p = rows.pred_off + r * rows.cols;
  let y = rows.target_off + r * rows.cols;
  let lse = log_sum_exp(p);
  var sum_y = 0.0;
  var energy = 0.0;
  for (var j = 0u; j < rows.cols; j++) {
    sum_y += work[y + j];
    energy -= work[y + j] * (work[p + j] - lse);
  }
  for (var j = 0u; j < rows.cols; j++) {
    work[p + j] = work[y + j] - exp(work[p + j] - lse) * sum_y;
  }
  write_partials(r, energy, 0.0);
}

@compute @workgroup_size(ROW_WG)
fn loss_rows(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let r = row_index(gid, nwg);
  if (r >= rows.rows) { return; }
  let p = rows.pred_off + r * rows.cols;
  let y = rows.target_off + r * rows.cols;
  var loss = 0.0;
  if (rows.loss_ce != 0u) {
    let lse = log_sum_exp(p);
    for (var j = 0u; j < rows.cols; j++) { loss -= work[y + j] * (work[p + j] - lse); }
  } else {
    for (var j = 0u; j < rows.cols; j++) {
      let d = work[y + j] - work[p + j];
      loss += 0.5 * d * d;
    }
  }
  var best_p = 0u;
  var best_y = 0u;
  for (var j = 1u; j < rows.cols; j++) {
    if (work[p + j] > work[p + best_p]) { best_p = j; }
    if (work[y + j] > work[y + best_y]) { best_y = j; }
  }
  write_partials(r, loss, select(0.0, 1.0, best_p == best_y));
}

#if ROW_TABLE
// Workgroup w covers rows (w mod groups)·ROW_WG … of region ⌊w / groups⌋.
@compute @workgroup_size(ROW_WG)
fn row_norms(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32, @builtin(num_workgroups) nwg: vec3u) {
  let w = wid.x + wid.y * nwg.x;
  let groups = table[0].groups;
  let region = w / groups;
  if (region >= table[0].regions) { return; }
  rows = table[region];
  let r = (w % groups) * ROW_WG + lid;
  if (r >= rows.rows) { return; }
  let p = rows.pred_off + r * rows.cols;
  var s = 0.0;
  for (var j = 0u; j < rows.cols; j++) { s += work[p + j] * work[p + j]; }
  write_partials(r, sqrt(s), 0.0);
}
#endif
