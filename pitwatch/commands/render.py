"""``pitwatch render OUT``: the Prometheus, Alertmanager and Grafana files for this platform."""
from __future__ import annotations

from pathlib import Path

from pitwatch.commands import add_config_option, load_config


def register(sub) -> None:
    parser = sub.add_parser(
        "render", help="write prometheus.yml, rules, alertmanager.yml and Grafana provisioning",
        description="Render everything the monitoring side reads from pitwatch.yml: "
                    "Prometheus scrape jobs and rules (job names and runbook links from the "
                    "config), alertmanager.yml (mail relay, remediation webhook and token, "
                    "chat, heartbeat), the mail template, Grafana provisioning and boards. "
                    "Files are replaced atomically; run it again after changing the config.")
    add_config_option(parser)
    parser.add_argument("out", type=Path, metavar="OUT", help="folder to write into")
    parser.set_defaults(func=_render)


def _render(args) -> int:
    from pitwatch import render

    cfg = load_config(args)
    written = render.write(cfg, args.out)
    print(f"{len(written)} files under {args.out}")
    for why in render.warnings(cfg):
        print(f"warning: {why}")
    return 0
