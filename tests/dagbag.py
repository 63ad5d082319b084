"""Airflow's DagBag for the tests, from where the running Airflow keeps it, and the dag-processor's
registration of a bag's DAGs in the metadata database."""

from __future__ import annotations

try:  # Airflow 3.2+
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db
except ImportError:  # Airflow 3.0 and 3.1
    from airflow.models.dagbag import DagBag

    try:
        from airflow.models.dagbag import sync_bag_to_db  # Airflow 3.1
    except ImportError:  # Airflow 3.0

        def sync_bag_to_db(dagbag: DagBag, bundle_name: str, bundle_version: str | None) -> None:
            dagbag.sync_to_db(bundle_name, bundle_version)


def register(dagbag: DagBag) -> None:
    """Write the bag's DAGs to the metadata database as the dag-processor does, which is what makes
    their assets active (``dag.test()`` alone does not on Airflow 3.0, and a task then refuses to run)."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager

    DagBundlesManager().sync_bundles_to_db()  # the DAGs' rows name their bundle's row
    sync_bag_to_db(dagbag, "dags-folder", None)


def test_dag(dag, folder, **test_kwargs):
    """Run a DAG built in a test through ``dag.test(**test_kwargs)``; returns the DagRun. Airflow
    3.1+ runs only a DAG it has serialized, so it is registered first (``folder``: an empty folder
    for the bag); 3.0 runs it as it is, and can't register a DAG that no file holds."""
    from packaging.version import Version

    from airflow import __version__

    if Version(__version__) >= Version("3.1"):
        bag = DagBag(dag_folder=str(folder))
        bag.bag_dag(dag)
        register(bag)
    return dag.test(**test_kwargs)


test_dag.__test__ = False  # a helper, not a test


def recording_failures(operator: type) -> type:
    """``operator`` as a subclass whose ``errors`` list keeps ``"<ExceptionType>: <message>"`` of
    each exception its ``render_template_fields`` (as a try starts), ``execute`` or
    ``execute_complete`` (after a deferral) raises. ``dag.test()``
    runs tasks in the test's process, and not every Airflow release prints a task's error or calls
    its failure callback there."""

    def recording(method):
        def run(self, *args, **kwargs):
            try:
                return method(self, *args, **kwargs)
            except Exception as exc:  # not a deferral: TaskDeferred is a BaseException
                type(self).errors.append(f"{type(exc).__name__}: {exc}")
                raise

        return run

    recorded = ("render_template_fields", "execute", "execute_complete")
    methods = {name: recording(getattr(operator, name)) for name in recorded if hasattr(operator, name)}
    return type(operator.__name__, (operator,), {**methods, "errors": []})


__all__ = ["DagBag", "register", "test_dag"]
