"""PRISM's own SVG drawing: gauges and charts carry the numbers, the thresholds and escaped labels only."""

from __future__ import annotations

from prism_mcp.web.draw import hourly_chart, level_bars, ring_gauge, severity


def test_a_gauge_is_coloured_by_the_threshold_its_value_crosses() -> None:
    assert severity(50, 80, 95) == "ok"
    assert severity(80, 80, 95) == "warn"
    assert severity(99, 80, 95) == "crit"
    assert 'class="gauge warn"' in ring_gauge("CPU", 85.0, 80, 95)


def test_a_gauge_clamps_its_value_and_escapes_its_label() -> None:
    svg = ring_gauge("<b>disk</b>", 140.0, 85, 95)
    assert "100.0%" in svg
    assert "<b>" not in svg
    assert "&lt;b&gt;disk" in svg


def test_the_hourly_chart_draws_one_bar_pair_per_hour_with_errors_in_red() -> None:
    hours = [{"hour": f"2026-12-03T{h:02d}:00:00Z", "total": 10 * h, "errors": h} for h in range(1, 7)]
    svg = hourly_chart(hours)
    assert svg.count('class="bar"') == 6
    assert svg.count('class="bar err"') == 6
    assert "06:00 UTC: 60 records, 6 errors" in svg


def test_an_empty_window_says_so_instead_of_drawing_nothing() -> None:
    assert "No records" in hourly_chart([])
    assert "No records" in hourly_chart([{"hour": "2026-12-03T01:00:00Z", "total": 0, "errors": 0}])
    assert level_bars({}) == ""


def test_level_bars_follow_severity_order() -> None:
    svg = level_bars({"ERROR": 2, "INFO": 9, "WARNING": 4})
    assert svg.index("INFO") < svg.index("WARNING") < svg.index("ERROR")
