"""workers/kernel"""
