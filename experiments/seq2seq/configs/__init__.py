"""Configs of the seq2seq experiment."""
