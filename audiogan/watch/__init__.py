"""Watching a sweep as a person does: the pages, opened in a real (headless) browser.

- `procs`: the local servers a person starts to watch (TensorBoard, optuna-dashboard) on
  127.0.0.1, and the marker that finds every process they or the browser started.
- `browser`: headless Chromium from Debian's `chromium` package, driven by Debian's
  `chromedriver` through a pinned selenium (no browser download, ever).
- `pages`: what a person checks on each page (Ray dashboard, TensorBoard, optuna-dashboard,
  the sweep page `audiogan best` writes), returned as plain records.
- `shots`: the screenshots in the README (`python -m audiogan.watch.shots`).
"""
