"""The torchrun command: torchrun owns its rendezvous port (`--standalone`), so two slots
starting groups on one host cannot race for a port picked before either binds it."""

from trainer.distributed.launch import torchrun_command


def test_single_node_groups_let_torchrun_pick_the_rendezvous_port() -> None:
    argv = torchrun_command(2, "trainer.cli", ["spec.yaml"])
    assert "--standalone" in argv
    assert not {"--master_port", "--master_addr", "--rdzv-endpoint"} & set(argv)
    assert argv[argv.index("--nproc_per_node") + 1] == "2"
    assert argv[-3:] == ["-m", "trainer.cli", "spec.yaml"]
