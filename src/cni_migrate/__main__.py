from cni_migrate.cli.main import run

run()
