"""Describe photos and count the people in them: media rows through a Gemini batch job.

Real photos that ship in a PyPI package: the sample images bundled with scikit-image
(``skimage/data``: an astronaut, a cat, a coffee cup, a rocket, a horse...; installed with this
provider's ``images`` extra). Each row names one photo by its path; the operator checks every photo
before anything is uploaded, sends small ones inline and uploads the larger ones once (removed
after the results land), and each answer lands validated in ``parsed``.

Triggered by hand from the UI; its params choose the model, the question, how many photos and
where the results go. Runs as shipped on the emulator, whose model answers from each photo's size
and colour; with a real API key, Gemini looks at the photos.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import pendulum
from airflow.sdk import Param, dag, task
from pydantic import BaseModel, Field

from gemini_batch_provider.operators.batch import GeminiBatchOperator

PHOTO_SUFFIXES = (".png", ".jpg")


class PhotoAnswer(BaseModel):
    """What Gemini answers for each photo (structured output)."""

    description: str = Field(min_length=1, description="The photo in one sentence")
    people: int = Field(ge=0, description="How many people the photo shows")


@dag(
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["gemini", "batch", "images"],
    params={
        "model": Param("gemini-3-flash-preview", type="string", description="Gemini model to run the batch on"),
        "question": Param("Describe this photo in one sentence and count the people in it.", type="string",
                          minLength=1, description="What to ask about each photo"),
        "photo_limit": Param(40, type="integer", minimum=1, maximum=100, description="At most this many photos"),
        "output_dir": Param(
            os.environ.get("GEMINI_BATCH_OUTPUT_DIR", "/tmp/gemini-batch-results"), type="string",
            description="Folder for this run's input and results files (one subfolder per run)",
        ),
    },
    doc_md=__doc__,
)
def gemini_images():
    @task
    def list_photos(params=None, run_id=None) -> str:
        """Write ``{"photo_id", "photo"}`` per sample photo to ``<output_dir>/<run_id>/photos.jsonl``."""
        spec = importlib.util.find_spec("skimage")
        if spec is None or not spec.submodule_search_locations:
            raise RuntimeError("scikit-image is not installed: pip install 'airflow-provider-gemini-batch[images]'")
        folder = Path(spec.submodule_search_locations[0]) / "data"
        photos = sorted(p for p in folder.iterdir() if p.suffix in PHOTO_SUFFIXES and p.stat().st_size > 10_000)
        path = Path(params["output_dir"]).expanduser() / run_id / "photos.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8") as out:
            for photo in photos[: params["photo_limit"]]:
                out.write(json.dumps({"photo_id": photo.stem, "photo": str(photo)}) + "\n")
        return str(path)

    # [START howto_media_fields]
    GeminiBatchOperator(
        task_id="describe_photos",
        deferrable=True,  # wait in the triggerer, whatever [operators] default_deferrable says
        input_path=list_photos(),
        key_field="photo_id",
        prompt_template="{{ params.question }}\n{photo}",
        media_fields=["photo"],
        inline_media_max_bytes=256_000,  # larger photos are uploaded once through the Files API
        response_schema=PhotoAnswer,
        # 280 tokens a photo on Gemini 3 (1120 at high): enough for a sentence about it.
        generation_config={"media_resolution": "MEDIA_RESOLUTION_LOW", "thinking_config": {"thinking_level": "low"}},
        model="{{ params.model }}",
        output_path="{{ params.output_dir }}/{{ run_id }}/results.jsonl",
        poll_interval=float(os.environ.get("GEMINI_BATCH_POLL_INTERVAL", "30")),
    )
    # [END howto_media_fields]


gemini_images()
