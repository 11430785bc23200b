"""Security: certificates, login failures, bans, headers and the firewall."""
from __future__ import annotations

from pitwatch.dashboards import promql, slo, units
from pitwatch.dashboards.common import (
    GREEN, NOT_CHECKED, RED, board, runbook_link, slo_steps, stat, steps, targets, timeseries,
)
from pitwatch.dashboards.promql import or_zero, rate

TLS = slo_steps(slo.TLS_WARNING, slo.TLS_CRITICAL)

dashboard = board("security", "pitwatch / Security",
                  "Certificates, login failures, fail2ban, security headers, firewall.", [
    stat("TLS time left", f"Until the first certificate expires. {slo.TLS_WARNING.description}"
         f"; {slo.TLS_CRITICAL.description}.", promql.TLS_TIME_LEFT, units.AGE,
         thresholds=TLS, graph=False, links=[runbook_link(slo.TLS_WARNING.alert)]),
    stat("Login failures per minute", "Failed logins seen in the auth logs.",
         or_zero(f"{rate('pitwatch_security_login_failures_total')} * 60"),
         units.OPS_PER_MINUTE, links=[runbook_link("LoginFailureSpike")]),
    stat("Banned by fail2ban", "Addresses banned now, all jails.",
         or_zero("sum(pitwatch_security_fail2ban_banned)"), units.SHORT),
    stat("Firewall", "Whether a packet filter is active on the host; \"not checked\" when "
         "the firewall check is off in pitwatch.yml or its state is unknown (no nft, "
         "iptables or ufw installed, or the exporter not root).",
         "min(pitwatch_security_firewall_active) or on() vector(-1)", units.UP_DOWN,
         thresholds=steps(RED, (1, GREEN)), graph=False, mappings=NOT_CHECKED,
         links=[runbook_link("FirewallInactive")]),
    timeseries("TLS time left by certificate", f"Per file or endpoint; dashed: "
               f"{slo.TLS_WARNING.description} and {slo.TLS_CRITICAL.description}.",
               targets(("min by (source) (pitwatch_security_tls_cert_not_after_timestamp_seconds)"
                        " - time()", "{{source}}")), units.AGE, thresholds=TLS,
               links=[runbook_link(slo.TLS_WARNING.alert)]),
    timeseries("Login failures", "Per minute: auth log failures by log file, and the app's "
               "own login failures by reason.",
               targets((or_zero(f"{rate('pitwatch_security_login_failures_total', 'source')}"
                                f" * 60"), "log {{source}}"),
                       (or_zero(f"{rate('pitwatch_app_login_failures_total', 'reason')} * 60"),
                        "app {{reason}}")), units.OPS_PER_MINUTE),
    stat("Security headers", "Whether the app's responses carry each required header.",
         targets(("min by (header) (pitwatch_security_http_header_present)", "{{header}}")),
         units.YES_NO, thresholds=steps(RED, (1, GREEN)), graph=False,
         text="value_and_name", w=12, h=8, links=[runbook_link("SecurityHeaderMissing")]),
    timeseries("Banned by jail", "Addresses banned by fail2ban, per jail.",
               targets((or_zero("sum by (jail) (pitwatch_security_fail2ban_banned)"),
                        "{{jail}}")), units.SHORT),
])
