import smtplib
import sys
from email.message import EmailMessage

from pitwatch.mailsink import read_mail
from pitwatch.core.procs import Child, free_port
from support.waiting import STARTUP, wait_until


def test_stores_each_mail_as_a_file(tmp_path):
    port = free_port()
    with Child("mailsink", [sys.executable, "-m", "pitwatch", "mailsink", tmp_path / "mail",
                            "--listen", f"127.0.0.1:{port}"], log=tmp_path / "sink.log"):
        def connects() -> bool:
            try:
                smtplib.SMTP("127.0.0.1", port, timeout=1).quit()
                return True
            except OSError:
                return False

        wait_until(connects, STARTUP, what="the SMTP server")
        for n in range(2):
            msg = EmailMessage()
            msg["From"], msg["To"] = "alertmanager@localhost", "oncall@localhost"
            msg["Subject"] = f"[CRITICAL] TradingAppDown #{n}"
            msg.set_content("The app is down.")
            with smtplib.SMTP("127.0.0.1", port, timeout=5) as smtp:
                smtp.send_message(msg)
        mails = read_mail(tmp_path / "mail")
    assert [m["Subject"] for _, m in mails] == ["[CRITICAL] TradingAppDown #0",
                                                 "[CRITICAL] TradingAppDown #1"]
    assert mails[0][1].get_content().strip() == "The app is down."
    assert mails[0][0] <= mails[1][0]
