// Recording during inference without readbacks: layer energies (and optionally the activities) of the states
// a solve passes through are written into GPU buffers and read once at the end.
//
// record_activities (elementwise)  traj[counter] ← y (every activity, the dummy included)
// record_energies   (one workgroup per layer)  records[counter][position] ← the layer's energy from the
//                   ERRORS partials (½Σe²/B; ce output: Σ row energies /B), JPC's record_layers order
// record_advance    (one invocation)  counter += 1
//
// Whether a state is recorded depends on the record's `when` and on the solver state: after an accepted step
// (and, for states observed at the start of a step, only while the solve runs), the final state (unless the
// steady-state event stopped the solve at the start of a step, which recorded it already), or always.
// A full buffer stops recording and sets the overflow flag.

const WHEN_NEXT_START: u32 = 0u; // at the start of a step: the state the last step accepted, unless done
const WHEN_ACCEPTED: u32 = 1u;   // after the step control: the candidate, if accepted
const WHEN_ALWAYS: u32 = 2u;
const WHEN_FINAL: u32 = 3u;       // the final state, unless the steady-state event already recorded it

struct Recording {
  when: u32,
  layers: u32,
  capacity: u32,
  traj_n: u32,   // elements per recorded state (0: energies only)
  y: u32,        // the activities to record
  pad0: u32,
  pad1: u32,
  pad2: u32,
}

@group(0) @binding(0) var<storage, read> segments: array<Segment>;
@group(0) @binding(1) var<storage, read> work: array<f32>;
@group(0) @binding(2) var<storage, read> state: SolverState;
@group(0) @binding(3) var<storage, read_write> records: array<f32>; // [counter, overflow, pad, pad, rows...]
@group(0) @binding(4) var<storage, read_write> traj: array<f32>;
@group(0) @binding(5) var<uniform> rec: Recording;


fn counter() -> u32 {
  return bitcast<u32>(records[0]);
}

fn should_record() -> bool {
  switch rec.when {
    case WHEN_NEXT_START: { return state.last_accepted != 0u && state.done == 0u; }
    case WHEN_ACCEPTED: { return state.last_accepted != 0u; }
    case WHEN_FINAL: { return state.event == 0u; }
    default: { return true; }
  }
}

@compute @workgroup_size(RED_WG)
fn record_activities(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * RED_WG;
  let c = counter();
  if (i >= rec.traj_n || c >= rec.capacity || !should_record()) { return; }
  traj[c * rec.traj_n + i] = work[rec.y + i];
}

@compute @workgroup_size(RED_WG)
fn record_energies(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let seg = segments[wid.x];
  var s = 0.0;
  for (var i = lid; i < seg.count; i += RED_WG) { s += work[seg.off + seg.stride * i]; }
  let total = workgroup_sum(vec4<f32>(s, 0.0, 0.0, 0.0), lid).x;
  let c = counter();
  if (lid == 0u && c < rec.capacity && should_record()) {
    records[4u + c * rec.layers + seg.out] = seg.scale * total;
  }
}

@compute @workgroup_size(1)
fn record_advance() {
  if (!should_record()) { return; }
  let c = counter();
  if (c < rec.capacity) {
    records[0] = bitcast<f32>(c + 1u);
  } else {
    records[1] = 1.0;
  }
}
