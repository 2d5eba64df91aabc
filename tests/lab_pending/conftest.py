"""Lab tests of the concerns written but not yet integrated into `relais deploy`'s ORDER
(see deploys/__init__.py). Run them, while integrating, with every concern deployed:

    RELAIS_DEPLOY_STEPS=all .venv/bin/pytest tests/lab_pending

They share the lab fixtures of tests/lab. CI does not run them until their concern joins
deploys.INTEGRATED and they move back to tests/lab.
"""

from tests.lab.conftest import deployed, lab, lab_up, plan, pytest_collection_modifyitems

__all__ = ["deployed", "lab", "lab_up", "plan", "pytest_collection_modifyitems"]
