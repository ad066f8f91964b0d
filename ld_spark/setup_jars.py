"""`python -m ld_spark.setup_jars`: fetch and cache the Delta jars (run by `make setup`)."""
from ld_spark import config, session


def main() -> None:
    jars = session.fetch_jars(config.load())
    print("Delta jars cached:", ", ".join(j.name for j in jars))


if __name__ == "__main__":
    main()
