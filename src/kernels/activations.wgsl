// JPC's eight activations and their derivatives, selected by the constant ACT (ids in activations.ts).
// The derivatives are the ones jax.grad gives, kinks included: relu'(0) = 0, leaky_relu'(0) = 1,
// hard_tanh'(±1) = 1, selu'(0) = scale·alpha.

const ACT: u32 = {{ACT}}u;
const ACT_LINEAR: u32 = 0u;
const ACT_TANH: u32 = 1u;
const ACT_HARD_TANH: u32 = 2u;
const ACT_RELU: u32 = 3u;
const ACT_LEAKY_RELU: u32 = 4u;
const ACT_GELU: u32 = 5u;
const ACT_SELU: u32 = 6u;
const ACT_SILU: u32 = 7u;

const SELU_SCALE: f32 = 1.0507009873554805;
const SELU_ALPHA: f32 = 1.6732632423543772;
const GELU_C: f32 = 0.7978845608028654; // sqrt(2/pi)
const LEAKY_SLOPE: f32 = 0.01;

// tanh saturates to ±1 in f32 beyond |x| = 9; clamping keeps drivers that evaluate it through exp() finite.
fn safe_tanh(x: f32) -> f32 {
  return tanh(clamp(x, -15.0, 15.0));
}

fn sigmoid(x: f32) -> f32 {
  return 1.0 / (1.0 + exp(-clamp(x, -80.0, 80.0)));
}

// exp(x) - 1 without the cancellation near 0 (WGSL has no expm1).
fn expm1(x: f32) -> f32 {
  if (abs(x) < 0.1) {
    return x * (1.0 + x * (0.5 + x * (0.16666667 + x * (0.041666668 + x * 0.008333334))));
  }
  return exp(x) - 1.0;
}

fn act(x: f32) -> f32 {
  switch ACT {
    case ACT_TANH: { return safe_tanh(x); }
    case ACT_HARD_TANH: { return clamp(x, -1.0, 1.0); }
    case ACT_RELU: { return max(x, 0.0); }
    case ACT_LEAKY_RELU: { return select(LEAKY_SLOPE * x, x, x >= 0.0); }
    case ACT_GELU: {
      let u = GELU_C * (x + 0.044715 * x * x * x);
      return 0.5 * x * (1.0 + safe_tanh(u));
    }
    case ACT_SELU: { return SELU_SCALE * select(SELU_ALPHA * expm1(min(x, 0.0)), x, x > 0.0); }
    case ACT_SILU: { return x * sigmoid(x); }
    default: { return x; }
  }
}

fn act_grad(x: f32) -> f32 {
  switch ACT {
    case ACT_TANH: {
      let t = safe_tanh(x);
      return 1.0 - t * t;
    }
    case ACT_HARD_TANH: { return select(0.0, 1.0, x >= -1.0 && x <= 1.0); }
    case ACT_RELU: { return select(0.0, 1.0, x > 0.0); }
    case ACT_LEAKY_RELU: { return select(LEAKY_SLOPE, 1.0, x >= 0.0); }
    case ACT_GELU: {
      let x2 = x * x;
      let t = safe_tanh(GELU_C * (x + 0.044715 * x2 * x));
      return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * GELU_C * (1.0 + 3.0 * 0.044715 * x2);
    }
    case ACT_SELU: { return select(SELU_SCALE * SELU_ALPHA * exp(min(x, 0.0)), SELU_SCALE, x > 0.0); }
    case ACT_SILU: {
      let s = sigmoid(x);
      return s * (1.0 + x * (1.0 - s));
    }
    default: { return 1.0; }
  }
}

// True for every finite f32 (false for ±inf and NaN), decided on the bits: compilers may assume
// finite maths and fold an `x != x` test away.
fn is_finite(x: f32) -> bool {
  return (bitcast<u32>(x) & 0x7f800000u) != 0x7f800000u;
}
