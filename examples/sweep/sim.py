"""A stand-in simulation for the sweep example: a damped oscillator, integrated with a given
x scale, y scale and zoom; writes one CSV line of results under out/."""
import math
import os
import sys

x_scale, y_scale, zoom = float(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
x, v, energy = x_scale, 0.0, 0.0
for step in range(2000):
    a = -y_scale * x - 0.01 * v
    v += a * 0.01
    x += v * 0.01
    energy = max(energy, 0.5 * v * v + 0.5 * y_scale * x * x)
os.makedirs("out", exist_ok=True)
name = f"out/sim_{x_scale:g}_{y_scale:g}_{zoom}.csv"
with open(name, "w") as out:
    out.write(f"{x_scale},{y_scale},{zoom},{x:.6f},{energy:.6f}\n")
print(name)
