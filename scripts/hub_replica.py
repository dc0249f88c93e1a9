#!/usr/bin/env python3
"""Build a local replica of the Hugging Face hub for the experiments (see ``docalign.hub_replica``).

python scripts/hub_replica.py --out logs/hub-replica
HF_HOME=logs/hub-replica HF_HUB_OFFLINE=1 docalign fit --config experiments/_base.yaml --config experiments/cord_ft.yaml
"""

from docalign.hub_replica import main

if __name__ == "__main__":
    main()
