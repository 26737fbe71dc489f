"""The device engine on one and on two simulated CPU devices (a fresh process: the devices
must exist before JAX starts).  Prints ``RESULT {json}``: both histories and what ran where.

    XLA_FLAGS=--xla_force_host_platform_device_count=2 KERAS_BACKEND=jax \
        python tests/distributed/check_engine_devices.py OUT_DIR
"""

from __future__ import annotations

import json
import sys

import jax

from laperm.experiment import paper_config, run


def main(out_dir: str) -> None:
    # BatchNorm, dropout and the augmentation; 2 full batches of 50 and one of 35 per epoch
    laperm = paper_config("conv2", epochs=1, train_fraction=0.003, validation_size=100,
                          sync_period=2, bn_batches=1)
    columns = ["loss", "val_loss", "val_accuracy", "test_loss", "test_accuracy",
               "test_accuracy_unsynced", "test_accuracy_stale_bn", "sync_count"]
    out = {"devices_present": len(jax.devices())}
    for cfg in (laperm.adam_baseline(),):  # Adam: exact arithmetic to compare (see the test)
        one, r1 = run(cfg, f"{out_dir}/{cfg.name}-one", progress=False, engine="device")
        two, r2 = run(cfg, f"{out_dir}/{cfg.name}-two", progress=False, engine="device",
                      devices=2)
        out[cfg.optimizer] = {
            "engine_devices": [r1["engine_devices"], r2["engine_devices"]],
            "hash": [r1["config_hash"], r2["config_hash"]],
            "one": one[columns].to_dict("list"), "two": two[columns].to_dict("list")}
    print("RESULT " + json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1])
