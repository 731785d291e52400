"""JPC itself (JAX on its default device: the GPU of a lent machine) on the settings of bench/inference.ts and
bench/peers.ts, for side-by-side figures with WPC on the same GPU (bench/device/run.sh). JPC is not vendored
here: its repository's `jpc` package must be importable (PYTHONPATH), with jax, equinox, diffrax and optax.

Networks: JPC's library-paper MLPs (784 → H × 300 → 10, tanh, no bias, batch 64; x_{b,i} = sin(0.37·(64·b + i)),
one-hot targets b mod 10, as the WPC benchmarks use). For each H it times, median over `reps` runs after two
warm-up calls (compilation), each call blocked on its result:
  solveEulerMs    jpc.solve_inference from the feedforward activities, Euler, constant dt 0.5, T = 20;
  solveHeunPidMs  the same with Heun + PIDController(rtol = atol = 1e-3), dt0 0.05 (JPC's defaults);
  stepEulerMs     jpc.make_pc_step (Adam, lr 1e-3) with the Euler solve above;
  stepHeunPidMs   jpc.make_pc_step with the Heun + PID solve;
  peersStepMs     jpc.make_pc_step with the step of bench/peers.ts (20 Euler steps of dt 0.5).
Prints one JSON line: {"device": ..., "jax": ..., "rows": [{"H": ..., ...}]}.

Usage: python3 bench/peers/pc_step_jpc.py [depths, default 3,5,10] [reps, default 20]"""
import json
import sys
import time

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import jpc
import optax

B = 64


def data():
    i = jnp.arange(B * 784, dtype=jnp.float32)
    x = jnp.sin(i * 0.37).reshape(B, 784)
    y = jax.nn.one_hot(jnp.arange(B) % 10, 10, dtype=jnp.float32)
    return x, y


def median_ms(fn, reps):
    """Median wall time of fn() in ms, after two warm-up calls; fn must return what to block on."""
    for _ in range(2):
        jax.block_until_ready(fn())
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        times.append((time.perf_counter() - t0) * 1e3)
    times.sort()
    return times[len(times) // 2]


SOLVERS = {
    "Euler": dict(solver=diffrax.Euler(), max_t1=20, dt=0.5, stepsize_controller=diffrax.ConstantStepSize()),
    "HeunPid": dict(solver=diffrax.Heun(), max_t1=20, dt=0.05, stepsize_controller=diffrax.PIDController(rtol=1e-3, atol=1e-3)),
}


def row(H, reps):
    x, y = data()
    model = jpc.make_mlp(jax.random.PRNGKey(0), input_dim=784, width=300, depth=H + 1, output_dim=10, act_fn="tanh", use_bias=False)
    out = {"H": H}

    @eqx.filter_jit
    def solve(model, activities, solver, max_t1, dt, stepsize_controller):
        return jpc.solve_inference(
            params=(model, None), activities=activities, output=y, input=x,
            solver=solver, max_t1=max_t1, dt=dt, stepsize_controller=stepsize_controller,
        )

    activities = jax.block_until_ready(jpc.init_activities_with_ffwd(model=model, input=x))
    for name, s in SOLVERS.items():
        out[f"solve{name}Ms"] = round(median_ms(lambda: solve(model, activities, **s), reps), 3)

    steps = dict(SOLVERS, Peers=dict(solver=diffrax.Euler(), max_t1=20 * 0.5, dt=0.5, stepsize_controller=diffrax.ConstantStepSize()))
    for name, s in steps.items():
        optim = optax.adam(1e-3)
        state = {"model": model, "opt": optim.init((eqx.filter(model, eqx.is_array), None))}

        def step():
            r = jpc.make_pc_step(
                state["model"], optim, state["opt"], y, input=x,
                ode_solver=s["solver"], max_t1=s["max_t1"], dt=s["dt"], stepsize_controller=s["stepsize_controller"],
            )
            state["model"], state["opt"] = r["model"], r["opt_state"]
            return r["loss"], eqx.filter(r["model"], eqx.is_array)

        key = "peersStepMs" if name == "Peers" else f"step{name}Ms"
        out[key] = round(median_ms(step, reps), 3)
    return out


def main():
    depths = [int(d) for d in (sys.argv[1] if len(sys.argv) > 1 else "3,5,10").split(",")]
    reps = int(sys.argv[2]) if len(sys.argv) > 2 else 20
    rows = [row(H, reps) for H in depths]
    dev = jax.devices()[0]
    print(json.dumps({"device": f"{dev.platform}: {getattr(dev, 'device_kind', str(dev))}", "jax": jax.__version__, "rows": rows}))


if __name__ == "__main__":
    main()
