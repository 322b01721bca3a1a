"""Clinical NLP: text from FHIR documents, a medspaCy pipeline, results as FHIR.

Only :mod:`fhir_ai.nlp.pipeline` (and the modules that use it: ``extract``, ``cli``,
``cxr``) import spaCy/medspaCy. The web process must not import them.
"""
