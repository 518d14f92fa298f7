"""The example deployments in deploy/ set up the recommended mode: peers that link by
their device keys, no cluster secret (which turns --require-signatures off). The secret
is only in commented-out variants, for nodes of releases without device keys."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
SECRET = "CLAWSYNC_CLUSTER_SECRET"
#: A shell code block of a Markdown file.
SHELL_BLOCK = re.compile(r"^```sh\n(.*?)^```", re.MULTILINE | re.DOTALL)


def set_lines(text: str) -> list[str]:
    """The lines of an env file or a shell script that are not comments."""
    return [line for line in text.splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def test_the_env_file_template_sets_no_cluster_secret() -> None:
    lines = set_lines((DEPLOY / "cluster.env.example").read_text())
    assert [line for line in lines if SECRET in line] == []
    assert any(line.startswith("CLAWSYNC_TOKEN=") for line in lines)


def test_the_compose_nodes_get_no_cluster_secret() -> None:
    """Neither from compose.yaml's own lines (an environment, a command's
    --cluster-secret) nor from the env file each node reads, which is made by copying
    its template (cluster.env from cluster.env.example): that is where the secret came."""
    text = (DEPLOY / "compose.yaml").read_text()
    assert [line for line in set_lines(text) if SECRET in line or "cluster-secret" in line] \
        == []
    for name, service in yaml.safe_load(text)["services"].items():
        env_files = service.get("env_file") or []
        for env_file in [env_files] if isinstance(env_files, str) else env_files:
            template = (DEPLOY / f"{env_file}.example").read_text()
            assert [line for line in set_lines(template) if SECRET in line] == [], \
                (name, env_file)


def test_the_kubernetes_pods_get_no_cluster_secret() -> None:
    documents: list[dict[str, Any]] = list(
        yaml.safe_load_all((DEPLOY / "kubernetes" / "clawsync.yaml").read_text()))
    containers = [container for document in documents if document["kind"] == "StatefulSet"
                  for container in document["spec"]["template"]["spec"]["containers"]]
    assert containers
    for container in containers:
        assert SECRET not in [variable["name"] for variable in container["env"]]


def test_the_readme_commands_set_no_cluster_secret() -> None:
    blocks = SHELL_BLOCK.findall((DEPLOY / "README.md").read_text())
    assert blocks
    assert [line for block in blocks for line in set_lines(block)
            if SECRET in line or "cluster-secret" in line] == []
