"""Notebook 07's views: what one DP setting does to every attack, beside no DP; the frontier.

As in ``fltutor.widgets``, the widgets only call plain functions (``eavesdrop``,
``fltutor.privacy.run_privacy``, the figures in ``viz``), so a test or a notebook run without a
frontend (nbval) gets the same numbers by calling those directly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ipywidgets as widgets

from .attacks.eavesdropper import Eavesdropped, Eavesdropper
from .federation import Federation
from .privacy import (FRONTIER_LABELS, NO_DP, SCENARIOS, PrivacyKey, dp_kinds, mean_by_setting,
                      privacy_table, run_privacy, scenario_config)
from .viz import privacy_frontier, reconstruction_pairs
from .widgets import show_in


def eavesdrop(kind: str, noise: float, clip: float, profile: str = "quick", seed: int = 0,
              shared: dict[str, Any] | None = None) -> tuple[Eavesdropped, dict]:
    """The privacy sweep's inversion scenario at one setting, with its reconstructions kept:
    what the server recovers of client 0's two images, and the round's metrics."""
    config = scenario_config(profile, PrivacyKey(kind, noise, clip, "inversion", seed), shared)
    federation = Federation.build(config)
    federation.run(progress=False)
    (server,) = [o for o in federation.observers if isinstance(o, Eavesdropper)]
    return server.latest, federation.history[-1]


def eavesdropped_figure(seen: Eavesdropped, title: str):
    """The client's images above what the server reconstructed of them."""
    return reconstruction_pairs(seen.originals, seen.images, title=title)


def setting_rows(results: list[dict], kind: str, noise: float, clip: float) -> list[dict]:
    """``privacy_table`` rows of one setting and of no DP, scenario by scenario."""
    wanted = {(NO_DP, 0.0, 1.0), (kind, noise, clip)}
    return [r for r in privacy_table(results) if (r["kind"], r["noise"], r["clip"]) in wanted]


def rows_html(rows: list[dict]) -> str:
    """The rows as an HTML table: scenario, kind, epsilon, the attack's success, stopped."""
    def cell(value, spec: str) -> str:
        return "-" if value is None else format(value, spec)

    body = "".join(
        f"<tr><td>{r['scenario']}</td><td>{r['kind']}</td><td>{cell(r['epsilon'], '.3g')}</td>"
        f"<td>{cell(r['success'], '.3f')}</td><td>{cell(r['clean_accuracy'], '.3f')}</td>"
        f"<td>{'-' if r['stopped'] is None else 'yes' if r['stopped'] else 'no'}</td></tr>"
        for r in rows)
    return ("<table><tr><th>scenario</th><th>DP</th><th>epsilon</th><th>attack's success</th>"
            f"<th>clean accuracy</th><th>attack stopped</th></tr>{body}</table>")


class PrivacyExplorer:
    """One DP setting against the attacks, beside no DP, and the frontier of all settings seen.

    The dropdown picks the DP kind, the sliders sigma and C; *run* reads the setting from the
    results already known (``results``: a finished sweep's lines) or runs it in ``scenarios`` at
    ``profile`` into ``out_dir`` (a privacy sweep folder: a setting run once is kept, and the
    frontier grows with every setting tried).
    """

    def __init__(self, out_dir: str | Path, scenarios: list[str], profile: str = "tiny",
                 shared: dict[str, Any] | None = None, results: list[dict] | None = None):
        self.out_dir, self.scenarios = Path(out_dir), list(scenarios)
        self.profile, self.shared = profile, shared
        self.results: list[dict] = list(results or [])
        self.kind = widgets.Dropdown(options=[NO_DP, *dp_kinds()], value="local-dp",
                                     description="DP kind")
        self.noise = widgets.FloatLogSlider(value=0.003, base=10, min=-4, max=1, step=0.25,
                                            description="sigma")
        self.clip = widgets.FloatLogSlider(value=0.5, base=10, min=-2, max=1, step=0.25,
                                           description="C")
        self.button = widgets.Button(description="run", button_style="primary")
        self.status = widgets.Label()
        self.table = widgets.HTML()
        self.frontier = widgets.Image(format="png")
        self.button.on_click(lambda _: self.run())
        self.widget = widgets.VBox([widgets.HBox([self.kind, self.noise, self.clip]),
                                    widgets.HBox([self.button, self.status]), self.table,
                                    self.frontier])

    def setting(self) -> tuple[str, float, float]:
        """The chosen (kind, sigma, C); no DP is always (none, 0, 1)."""
        if self.kind.value == NO_DP:
            return NO_DP, 0.0, 1.0
        return self.kind.value, float(self.noise.value), float(self.clip.value)

    def known(self, setting: tuple[str, float, float]) -> bool:
        """Whether every scenario of ``setting`` and of no DP is among the results."""
        have = {(r["kind"], r["noise"], r["clip"], r["scenario"]) for r in self.results}
        return all((*s, name) in have for s in (setting, (NO_DP, 0.0, 1.0))
                   for name in self.scenarios)

    def run(self) -> list[dict]:
        """Show the chosen setting, running it first unless it is known; returns its rows."""
        kind, noise, clip = setting = self.setting()
        if not self.known(setting):
            self.status.value = f"running {kind} in {len(self.scenarios)} scenarios ..."
            fresh = run_privacy(self.out_dir, kinds=[kind], noises=[noise], clips=[clip],
                                scenarios=self.scenarios, profile=self.profile,
                                shared=self.shared, progress=False)
            seen = {PrivacyKey(**{f: r[f] for f in ("kind", "noise", "clip", "scenario", "seed")})
                    for r in self.results}
            self.results += [r for r in fresh if PrivacyKey(**{
                f: r[f] for f in ("kind", "noise", "clip", "scenario", "seed")}) not in seen]
        rows = setting_rows(self.results, kind, noise, clip)
        self.table.value = rows_html(rows)
        labels = {name: FRONTIER_LABELS[name] for name in SCENARIOS if name in FRONTIER_LABELS
                  and any(r["scenario"] == name for r in self.results)}
        show_in(self.frontier, privacy_frontier(mean_by_setting(self.results), labels))
        self.status.value = f"{kind}: sigma {noise:.3g}, C {clip:.3g}"
        return rows
