"""bot/http"""
