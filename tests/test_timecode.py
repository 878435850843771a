"""Timecode as the editor shows it: drop-frame against known SMPTE pairs, non-drop unchanged."""
import pytest

from emsync_plugin.timeline.timecode import drop_frames, format_timecode, parse_timecode

NTSC = 30000 / 1001
NTSC60 = 60000 / 1001

# (real frame number, drop-frame label) at 29.97 DF
DF_2997 = [
    (0, "00:00:00;00"), (29, "00:00:00;29"), (1799, "00:00:59;29"), (1800, "00:01:00;02"),
    (3597, "00:01:59;29"), (3598, "00:02:00;02"), (17981, "00:09:59;29"), (17982, "00:10:00;00"),
    (17983, "00:10:00;01"), (19781, "00:10:59;29"), (19782, "00:11:00;02"), (107892, "01:00:00;00"),
    (2589407, "23:59:59;29"),
]
# at 59.94 DF four labels go each minute
DF_5994 = [(3599, "00:00:59;59"), (3600, "00:01:00;04"), (35964, "00:10:00;00"), (215784, "01:00:00;00")]


@pytest.mark.parametrize("frame,label", DF_2997)
def test_2997_drop_frame_pairs(frame, label):
    assert format_timecode(frame / NTSC, NTSC, drop_frame=True) == label
    assert round(parse_timecode(label, NTSC) * NTSC) == frame


@pytest.mark.parametrize("frame,label", DF_5994)
def test_5994_drop_frame_pairs(frame, label):
    assert format_timecode(frame / NTSC60, NTSC60, drop_frame=True) == label
    assert round(parse_timecode(label, NTSC60) * NTSC60) == frame


def test_the_issue_example():
    """A 29.97 DF timeline starting at 01:00:00;00 was shown as 00:59:56:12."""
    start = parse_timecode("01:00:00;00", NTSC)
    assert start == pytest.approx(107892 * 1001 / 30000)  # 3599.9964 s: DF keeps to the clock
    assert format_timecode(start, NTSC, drop_frame=True) == "01:00:00;00"
    assert format_timecode(start, NTSC) == "00:59:56:12"  # the same instant, non-drop


def test_round_trip_every_frame_of_twenty_minutes():
    for rate in (NTSC, NTSC60):
        for frame in range(0, int(rate * 1200), 7):
            label = format_timecode(frame / rate, rate, drop_frame=True)
            assert round(parse_timecode(label, rate) * rate) == frame, label


def test_non_drop_unchanged():
    assert format_timecode(3600.0, 25.0) == "01:00:00:00"
    assert format_timecode(3600.0, 25.0, drop_frame=True) == "01:00:00:00"  # no DF at 25 fps
    assert format_timecode(1.5, 24.0) == "00:00:01:12"
    assert format_timecode(1800 / NTSC, NTSC) == "00:01:00:00"
    assert format_timecode(0.0, 0.5) == "00:00:00:00"  # below 1 fps still prints
    assert parse_timecode("01:00:00:00", 25.0) == 3600.0
    assert parse_timecode("00:01:00:00", NTSC) == pytest.approx(1800 / NTSC)
    assert parse_timecode("00:01:00;02", NTSC, drop_frame=False) == pytest.approx(1802 / NTSC)


def test_drop_frame_rates():
    assert drop_frames(NTSC) == 2 and drop_frames(NTSC60) == 4
    assert drop_frames(24000 / 1001) == 0 and drop_frames(25.0) == 0 and drop_frames(30.0) == 0


@pytest.mark.parametrize("text", ["", "1:2:3", "00:01:00;00", "00:61:00:00", "00:00:00:30", "ab:cd:ef:gh"])
def test_parse_refuses(text):
    with pytest.raises(ValueError):
        parse_timecode(text, NTSC)
