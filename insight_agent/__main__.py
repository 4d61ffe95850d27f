"""Allow ``python -m insight_agent``."""

from insight_agent.cli import main

if __name__ == "__main__":
    main()
