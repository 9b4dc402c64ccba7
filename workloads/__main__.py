import sys

from workloads.runtime.signals import capture_early

capture_early()  # before the heavy imports: a stop during start-up still gets its document

from workloads.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
