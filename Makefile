# Two commands for a fresh Debian or Ubuntu machine with Python 3.11+:
#   make run    install everything, start the console on the embedded training backend
#   make test   install everything, run the whole test suite
# and for measurements: make faults, make bench, make workload (see docs/);
# for an installable bundle: make bundle, make bundle-check (packaging/README.md).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# What a real Qt window needs on Linux (the xcb platform plugin and its libraries).
DEBIAN_PACKAGES := libegl1 libgl1 libfontconfig1 libdbus-1-3 libglib2.0-0 \
	libxkbcommon0 libxkbcommon-x11-0 libx11-xcb1 libxcb-cursor0 libxcb-icccm4 \
	libxcb-keysyms1 libxcb-image0 libxcb-render-util0 libxcb-shape0 libxcb-xinerama0 \
	libxcb-randr0 libxcb-xfixes0 libxcb-xkb1 \
	libnss3 libxcomposite1 libxdamage1 libxrandr2 libxtst6 libxkbfile1 libasound2 \
	libgbm1 libxcb-dri3-0 fonts-dejavu-core libpulse0
# ...and the last two lines for QtWebEngine, which the maps use, and DejaVu, whose
# glyphs the UI uses for states (a stock desktop has no emoji font); PulseAudio's
# client library, which QtMultimedia and QtTextToSpeech (the alarms) link against.
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
BUNDLE_VENV := build/bundle-venv
BUNDLE_NAME := em-console-$(VERSION)-linux-$(shell uname -m)

.PHONY: run test faults bench workload bundle bundle-check system-packages clean

$(VENV)/.installed: pyproject.toml
	$(MAKE) --no-print-directory system-packages
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

system-packages:
	@command -v dpkg >/dev/null || { echo "Not Debian-like: install Qt's xcb libraries yourself."; exit 0; }; \
	need="$(DEBIAN_PACKAGES)"; \
	$(PYTHON) -c 'import ensurepip' 2>/dev/null || need="$$need python3-venv"; \
	missing=$$(for p in $$need; do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		echo "Installing Debian packages:" $$missing; \
		$$sudo apt-get update -qq && \
		$$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

test: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	QT_QPA_PLATFORM=offscreen $(BIN)/pytest --ignore=tests/test_signin.py --ignore=tests/test_ui_wearer.py
	# The qasync tests, in a process without QtWebEngine: each test ends the Qt event
	# loop, and QCoreApplication::exit() emits aboutToQuit, whose QtWebEngine handler
	# crashes on its second run in a process (gdb: exit > aboutToQuit > WebEngineCore).
	# The console itself exits once.
	QT_QPA_PLATFORM=offscreen $(BIN)/pytest tests/test_signin.py tests/test_ui_wearer.py

# The long fault-injection run (200 kills of each process); writes docs/reliability.md.
faults: $(VENV)/.installed
	$(BIN)/python tests/fault_suite.py --kills 200 --acks 1000 --freezes 3 --report docs/reliability.md

# Work items against raw notifications and the simulator's ground truth: the
# Figure-6 fleet for 30 simulated days (issue 10); writes its table into docs/perf.md.
workload: $(VENV)/.installed
	$(BIN)/python tests/workload_suite.py --wearers 1732 --days 30 --operators 4 --report docs/perf.md

# Benchmarks P1-P6 (about 45 minutes: three runs, each with a 10-minute sustained
# ingest) and P7, the trail map (a few minutes, one run); writes their tables into
# docs/perf.md. `python tests/bench_suite.py --only P7 --report docs/perf.md` runs P7 alone.
bench: $(VENV)/.installed
	$(BIN)/python tests/bench_suite.py --minutes 10 --runs 3 --report docs/perf.md

# dist/em-console/ from a clean virtual environment, with its SBOM and a tar.gz
# (about 2 minutes).
bundle:
	@$(MAKE) --no-print-directory system-packages
	@start=$$(date +%s); set -e; \
	rm -rf $(BUNDLE_VENV) build/pyinstaller dist/em-console dist/$(BUNDLE_NAME).*; \
	$(PYTHON) -m venv $(BUNDLE_VENV); \
	$(BUNDLE_VENV)/bin/pip install --quiet --upgrade pip; \
	$(BUNDLE_VENV)/bin/pip install --quiet . -r packaging/build-requirements.txt; \
	$(BUNDLE_VENV)/bin/pyinstaller build.spec --noconfirm --clean --log-level ERROR \
		--distpath dist --workpath build/pyinstaller; \
	$(BUNDLE_VENV)/bin/python packaging/sbom.py build/pyinstaller/build/bundled-distributions.json \
		dist/$(BUNDLE_NAME).cdx.json; \
	mkdir dist/em-console/share; \
	cp packaging/linux/em-console.desktop resources/icons/em-console.png \
		resources/icons/em-console.svg dist/em-console/share/; \
	cp packaging/linux/install.sh dist/em-console/; \
	tar -C dist -czf dist/$(BUNDLE_NAME).tar.gz em-console; \
	echo "Bundle $(VERSION): dist/em-console/ $$(du -sh dist/em-console | cut -f1)," \
		"dist/$(BUNDLE_NAME).tar.gz $$(du -sh dist/$(BUNDLE_NAME).tar.gz | cut -f1)," \
		"SBOM dist/$(BUNDLE_NAME).cdx.json; built in $$(( $$(date +%s) - start )) s"

# CI's second step: the bundle built from scratch, then its self-test.
bundle-check: bundle
	$(PYTHON) packaging/check_bundle.py dist/em-console dist/$(BUNDLE_NAME).cdx.json

run: $(VENV)/.installed
	@if [ -n "$$DISPLAY$$WAYLAND_DISPLAY" ]; then \
		$(BIN)/em-console; \
	else \
		echo "No display: running the real window offscreen for 20 s against the training backend."; \
		$(BIN)/em-console --offscreen-for 20 --screenshot em-console-screenshot.png && \
		echo "The window as it looked: em-console-screenshot.png"; \
	fi

clean:
	rm -rf $(VENV) build dist *.egg-info
