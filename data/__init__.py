"""The data layer: the ingested record format, image decoding and checks, image statistics and
reading the record files. Below the models, serving and the stages; imports only the framework."""
