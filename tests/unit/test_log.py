import logging

from appliance.log import LogfmtFormatter, log_event


def test_one_logfmt_line_per_event(caplog):
    logger = logging.getLogger("fcr.test")
    with caplog.at_level(logging.INFO, logger="fcr.test"):
        log_event(logger, "bgp.state", peer="10.0.0.2", to="Established", text='a "b"\nc')
    line = LogfmtFormatter().format(caplog.records[0])
    assert "\n" not in line
    assert "event=bgp.state" in line and "peer=10.0.0.2" in line and "to=Established" in line
    assert 'text="a \\"b\\"\\nc"' in line
