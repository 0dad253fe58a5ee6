"""One recipe per study: a config with the study's own settings, composed into a run's parts.

``crpa``  the combined reconstruction-and-poisoning attack (Becker et al. 2025): one malicious
          client, its control run, DP; ``fltutor crpa`` and the CRPA sweeps run it.
"""
