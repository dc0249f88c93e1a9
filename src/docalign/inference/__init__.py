"""Using a trained model outside training: ``docalign predict`` on new pages and ``docalign export``.

- ``loading``: a trained system (and what its data settings were) from a Lightning ``.ckpt`` or an exported folder;
- ``pages``: the pages of the inputs (images, every page of a PDF, folders) and their words (OCR or a words JSON);
- ``predict``: one JSON per page (words, labels, entities, document class, answers), the ``docalign predict`` command;
- ``overlay``: a page drawn with its labelled boxes;
- ``export``: a ``transformers`` folder where the model is one, else docalign's own folder format.

Nothing here builds a Trainer or a logger: predicting writes only what it is asked to write.
"""
