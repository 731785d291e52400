"""The PC training step of bench/peers.ts on the CPU with numpy (float32, BLAS): JPC's semantics (activation
before the linear map, no activation on the input, ½ energies, 1/B), feedforward init, N Euler steps of
dz/dt = -dF/dz, then Adam on the weights. The first layer's prediction W_1 x is computed once per training step
(the input is clamped), as WPC does; with the argument `recompute` it is recomputed at every Euler step, as
JPC's energy function does. Prints one JSON line: median ms per training step for each depth."""
import json, sys, time
import numpy as np

def step(W, m, v, t, x, y, n_steps, dt, recompute, lr=1e-3, b1=0.9, b2=0.999, eps=1e-8):
    B = x.shape[0]
    L = len(W)
    z = [x]
    for l in range(L - 1):
        z.append((z[-1] if l == 0 else np.tanh(z[-1])) @ W[l].T)
    first = z[1].copy()  # W_1 x: fixed while x is clamped

    def errors(phi):
        pred = [phi[0] @ W[0].T if recompute else first] + [phi[l] @ W[l].T for l in range(1, L)]
        return [None] + [z[l + 1] - pred[l] for l in range(L - 1)] + [y - pred[L - 1]]

    for _ in range(n_steps):
        phi = [z[0]] + [np.tanh(a) for a in z[1:]]
        e = errors(phi)
        for l in range(1, L):
            g = e[l] - (1 - phi[l] ** 2) * (e[l + 1] @ W[l])
            z[l] = z[l] - dt * g / B
    phi = [z[0]] + [np.tanh(a) for a in z[1:]]
    e = errors(phi)
    for l in range(L):
        g = -(e[l + 1].T @ phi[l]) / B
        m[l] = b1 * m[l] + (1 - b1) * g
        v[l] = b2 * v[l] + (1 - b2) * g * g
        W[l] -= lr * (m[l] / (1 - b1 ** t)) / (np.sqrt(v[l] / (1 - b2 ** t)) + eps)

def main():
    depths = [int(d) for d in sys.argv[1].split(',')]
    n_steps, dt, reps = int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
    recompute = len(sys.argv) > 5 and sys.argv[5] == 'recompute'
    rng = np.random.default_rng(0)
    out = {}
    for H in depths:
        dims = [784] + [300] * H + [10]
        W = [(rng.uniform(-1, 1, (dims[l + 1], dims[l])) / np.sqrt(dims[l])).astype(np.float32) for l in range(len(dims) - 1)]
        m = [np.zeros_like(w) for w in W]
        v = [np.zeros_like(w) for w in W]
        x = rng.standard_normal((64, 784)).astype(np.float32)
        y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, 64)]
        times = []
        for t in range(reps + 2):
            t0 = time.perf_counter()
            step(W, m, v, t + 1, x, y, n_steps, dt, recompute)
            if t >= 2:
                times.append((time.perf_counter() - t0) * 1e3)
        times.sort()
        out[str(H)] = times[len(times) // 2]
    print(json.dumps(out))

main()
