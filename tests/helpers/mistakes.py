"""The mistakes table's rows: real command lines and the words their one paragraph must hold.

`tests/test_cli_mistakes.py` runs them; `scripts/bench_mistakes.py` times the config-only ones.
No torch here: the benchmark imports this module.
"""

# (command, arguments, words the message must contain); {tmp} is the test's tmp dir.
# Mistakes the command line alone shows: answered before torch, Lightning, timm or wandb load.
CONFIG_ONLY = [
    ("convattn-train", ["recipe.optimizer.lr=nan"], ["recipe.optimizer.lr=nan", ">= 0"]),
    ("convattn-train", ["recipe.optimizer.lr=-0.1"], ["recipe.optimizer.lr=-0.1", ">= 0"]),
    ("convattn-train", ["recipe.optimizer.weight_decay=-1"], ["weight_decay=-1"]),
    ("convattn-train", ["recipe.label_smoothing=1.0"], ["label_smoothing=1.0", "[0, 1)"]),
    ("convattn-train", ["recipe.mixup.mixup_alpha=-1"], ["mixup.mixup_alpha=-1"]),
    (
        "convattn-train",
        ["recipe.class_weights=[1.0,2.0]"],
        ["recipe.class_weights=[1.0, 2.0]", "10 numbers"],
    ),
    ("convattn-train", ["trainer.max_epochs=-1"], ["trainer.max_epochs=-1", "max_steps"]),
    ("convattn-train", ["seed=abc"], ["seed='abc'", "an integer in [0, 4294967295]"]),
    ("convattn-train", ["seed=-1"], ["seed=-1", "an integer in [0, 4294967295]"]),
    ("convattn-eval", ["seed=1.5", "ckpt_path=x.ckpt"], ["seed=1.5", "an integer"]),
    ("convattn-train", ["data.batch_size=0"], ["data.batch_size=0"]),
    ("convattn-train", ["data.eval_batch_size=-4"], ["data.eval_batch_size=-4"]),
    ("convattn-train", ["data.val_fraction=1.5"], ["data.val_fraction=1.5"]),
    ("convattn-train", ["data.train_fraction=0"], ["data.train_fraction=0"]),
    ("convattn-train", ["data.img_size=4"], ["data.img_size=4"]),
    ("convattn-train", ["data.imbalance=5"], ["data.imbalance=5"]),
    ("convattn-train", ["data=mnist", "data.batch_size=0"], ["data.batch_size=0"]),
    (
        "convattn-train",
        ["model=transformerz"],
        ["model=transformerz", "cbam, cnn, hybrid, resvit, vit"],
    ),
    ("convattn-train", ["model.size=huge"], ["huge", "tiny"]),
    ("convattn-train", ["recipe.optimzer.lr=1e-3"], ["did you mean", "recipe.optimizer.lr"]),
    ("convattn-train", ["trainer.max_epoch=3"], ["did you mean", "trainer.max_epochs"]),
    ("convattn-train", ["resume=maybe"], ["resume='maybe'", "resume=force"]),
    ("convattn-eval", ["ckpt_path={tmp}/notes.ckpt", "split=trian"], ["split"]),
    (
        "convattn-train",
        ["trainer=ddp_cpu", "recipe.compile=true", "trainer.sync_batchnorm=true"],
        ["recipe.compile=true", "trainer.sync_batchnorm=false"],
    ),
    (
        "convattn-train",
        ["-m", "hydra/launcher=slurm", "trainer=gpu", "seed=0,1"],
        ["hydra.launcher.gpus_per_node=null", "gpus_per_node=1"],
    ),
    (
        "convattn-train",
        ["-m", "hydra/launcher=slurm", "hydra.launcher.gpus_per_node=4", "seed=0,1"],
        ["gpus_per_node=4", "tasks_per_node=1", "tasks_per_node=4"],
    ),
    ("convattn-train", ["trainer.max_epochs=two"], ["trainer.max_epochs='two'", "an integer"]),
    ("convattn-train", ["recipe.optimizer.lr=[1,2]"], ["recipe.optimizer.lr=[1, 2]", "a number"]),
    ("convattn-train", ["data.batch_size=[64]"], ["data.batch_size=[64]", "an integer"]),
    ("convattn-train", ["data.hflip=maybe"], ["data.hflip='maybe'", "true or false"]),
    (
        "convattn-train",
        ["model=vit", "model.patch_size=5"],
        ["model.patch_size=5", "1, 2, 4, 8, 16, 32"],
    ),
    ("convattn-train", ["model=vit", "model.num_heads=5"], ["model.num_heads=5", "divisors of 96"]),
    (
        "convattn-train",
        ["model=hybrid", "model.patch_size=6"],
        ["model.patch_size=6", "power of two"],
    ),
    (
        "convattn-train",
        ["model=cbam", "model.attn_layer=gate"],
        ["model.attn_layer='gate'", "lcbam"],
    ),
    ("convattn-train", ["model.drop_rate=1.5"], ["model.drop_rate=1.5", "[0, 1)"]),
    (
        "convattn-train",
        ["model=vit", "+model.patch_sz=4"],
        ["model.patch_sz", "did you mean", "model.patch_size"],
    ),
    ("convattn-train", ["data=mnist", "data.crop_padding=40"], ["data.crop_padding=40", "[0, 31]"]),
    (
        "convattn-train",
        ["recipe.scheduler.warmup_epochs=-1"],
        ["warmup_epochs=-1", "a number in [0"],
    ),
    ("convattn-train", ["-m", "seed=0,abc"], ["Job 1", "seed='abc'", "No job was started"]),
]
# Mistakes that need a file, a dir or the data: answered once the task has loaded.
NEEDS_FILES = [
    ("convattn-train", ["train=false"], ["train=false", "checkpoints/best.ckpt", "ckpt_path="]),
    (
        "convattn-train",
        ["data=cifar10", "data.root={tmp}/none"],
        ["CIFAR-10", "data.download=true"],
    ),
    ("convattn-train", ["data=imagefolder", "data.root={tmp}/none"], ["{tmp}/none"]),
    ("convattn-train", ["ckpt_path={tmp}/nowhere.ckpt"], ["ckpt_path=", "no checkpoint file"]),
    ("convattn-train", ["ckpt_path={tmp}/notes.ckpt"], ["notes.ckpt", "cannot be read"]),
    ("convattn-train", ["ckpt_path={tmp}/truncated.ckpt"], ["truncated.ckpt", "cannot be read"]),
    ("convattn-train", ["hydra.run.dir={tmp}/notes.ckpt/run"], ["notes.ckpt"]),
    (
        "convattn-eval",
        ["ckpt_path={tmp}/nowhere.ckpt"],
        ["ckpt_path='{tmp}/nowhere.ckpt'", "no checkpoint file"],
    ),
    (
        "convattn-eval",
        ["ckpt_path={tmp}/notes.ckpt"],
        ["notes.ckpt", "could not be read as a convattn checkpoint"],
    ),
    ("convattn-eval", ["ckpt_path={tmp}/truncated.ckpt"], ["truncated.ckpt"]),
    ("convattn-explain", ["{tmp}/notes.ckpt"], ["notes.ckpt"]),
    ("convattn-report", ["{tmp}/no_sweep_here"], ["no_sweep_here"]),
    ("convattn-explain", ["{tmp}/notes.ckpt", "--device=tpu"], ["device='tpu'", "cuda:N"]),
]
MISTAKES = CONFIG_ONLY + NEEDS_FILES
